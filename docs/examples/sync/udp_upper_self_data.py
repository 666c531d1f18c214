import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyUDPHandler(socketserver.BaseRequestHandler):
    """
    This class works similar to the TCP handler class, except that
    self.request consists of a pair of data and client socket, and since
    there is no connection the client address must be given explicitly
    when sending data back via sendto().
    """

    def handle(self):
        data = self.request[0].strip()
        socket = self.request[1]
        print(f'{self.client_address[0]} wrote: {self.data}')
        socket.sendto(data.upper(), self.client_address)

if __name__ == "__main__":
    with socketserver.UDPServer(('localhost', int(os.environ.get("EXAMPLE_PORT", "9999"))), MyUDPHandler) as server:  # port from the environment
        print("listening on", server.server_address, flush=True)  # added for the tests
        server.serve_forever()
