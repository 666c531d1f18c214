import trio_socketserver.sync as socketserver
import os

class MyForkingTCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        pid = os.fork()
        if pid == 0:  # child process
            print("Process ID:", os.getpid())
            self.request.sendall(b"Hello from process " + str(os.getpid()).encode())
            os._exit(0)

server = socketserver.TCPServer(('127.0.0.1', int(os.environ.get("EXAMPLE_PORT", "8000"))), MyForkingTCPHandler)  # port from the environment
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
